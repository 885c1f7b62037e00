#!/usr/bin/env python3
print("fetch_night.py")
