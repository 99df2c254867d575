"""What an auditor runs: verify the archive's signatures, rebuild the store from the archive and compare.
"""
