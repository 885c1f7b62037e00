#!/bin/sh
echo nightly_stats.sh
