#!/usr/bin/env python3
print("qc_plots.py")
