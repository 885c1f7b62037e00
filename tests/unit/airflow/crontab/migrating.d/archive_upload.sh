#!/bin/sh
echo archive_upload.sh
