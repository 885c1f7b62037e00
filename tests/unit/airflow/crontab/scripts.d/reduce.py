#!/usr/bin/python3
print("reduce")
