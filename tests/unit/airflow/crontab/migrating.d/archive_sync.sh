#!/bin/sh
echo archive_sync.sh
