"""Test-session settings.

numpy's OpenBLAS spins its worker threads; beside torch's own thread pool on a 2-core machine that
oversubscription made small least-squares solves ~300x slower. numpy work in the tests is small, so
it runs single-threaded (set before numpy is first imported).
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
