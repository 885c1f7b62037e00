#!/usr/bin/env python3
print("verify_tape.py")
