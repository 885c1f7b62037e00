#!/usr/bin/env python3
print("make_flats.py")
