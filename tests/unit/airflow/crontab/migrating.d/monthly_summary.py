#!/usr/bin/env python3
print("monthly_summary.py")
