#!/usr/bin/env python3
print("make_bias.py")
