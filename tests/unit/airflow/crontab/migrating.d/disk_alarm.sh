#!/bin/sh
echo disk_alarm.sh
