#!/bin/sh
echo an older qc already in the image
