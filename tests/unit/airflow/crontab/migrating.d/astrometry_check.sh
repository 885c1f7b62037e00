#!/bin/sh
echo astrometry_check.sh
