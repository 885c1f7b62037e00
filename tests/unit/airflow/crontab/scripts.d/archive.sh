#!/bin/sh
echo archive
