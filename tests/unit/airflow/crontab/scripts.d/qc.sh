#!/bin/sh
echo team version
