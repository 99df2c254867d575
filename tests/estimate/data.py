"""Published list-overlap tables used as references.

UK 2013 modern-slavery data (National Crime Agency strategic assessment 2013), six lists LA (local
authorities), NG (NGOs), PF (police forces), GO (government organisations), GP (general public), NCA
(National Crime Agency); 2,744 people observed. Source: Bales, Hesketh & Silverman (2015), "Modern slavery
in the UK: how many victims?", Significance 12(3); Silverman (2014) Home Office report "Modern slavery: an
application of multiple systems estimation". Counts transcribed from the data set ``UKdat`` of the R package
SparseMSE 2.0.1 (CRAN, Chan, Silverman & Vincent; file data/UKdat.rda), patterns with zero count omitted.
``UKdat_5`` in the same package merges PF and NCA into PFNCA (the five-list version).
"""

UK_LISTS = ("LA", "NG", "PF", "GO", "GP", "NCA")

# (LA, NG, PF, GO, GP, NCA): count  -- SparseMSE 2.0.1, UKdat
UKDAT = {
    (1, 0, 0, 0, 0, 0): 54, (0, 1, 0, 0, 0, 0): 463, (0, 0, 1, 0, 0, 0): 907, (0, 0, 0, 1, 0, 0): 695,
    (0, 0, 0, 0, 1, 0): 316, (0, 0, 0, 0, 0, 1): 57, (1, 1, 0, 0, 0, 0): 15, (1, 0, 1, 0, 0, 0): 19,
    (1, 0, 0, 1, 0, 0): 3, (0, 1, 1, 0, 0, 0): 56, (0, 1, 0, 1, 0, 0): 19, (0, 1, 0, 0, 1, 0): 1,
    (0, 1, 0, 0, 0, 1): 3, (0, 0, 1, 1, 0, 0): 69, (0, 0, 1, 0, 1, 0): 10, (0, 0, 1, 0, 0, 1): 31,
    (0, 0, 0, 1, 1, 0): 8, (0, 0, 0, 1, 0, 1): 6, (0, 0, 0, 0, 1, 1): 1, (1, 1, 1, 0, 0, 0): 1,
    (1, 1, 0, 1, 0, 0): 1, (0, 1, 1, 1, 0, 0): 4, (0, 1, 1, 0, 0, 1): 3, (0, 0, 1, 1, 0, 1): 1,
    (1, 1, 1, 1, 0, 0): 1,
}

UK5_LISTS = ("LA", "NG", "PFNCA", "GO", "GP")

# (LA, NG, PFNCA, GO, GP): count  -- SparseMSE 2.0.1, UKdat_5
UKDAT_5 = {
    (1, 0, 0, 0, 0): 54, (0, 1, 0, 0, 0): 463, (0, 0, 1, 0, 0): 995, (0, 0, 0, 1, 0): 695,
    (0, 0, 0, 0, 1): 316, (1, 1, 0, 0, 0): 15, (1, 0, 1, 0, 0): 19, (1, 0, 0, 1, 0): 3,
    (0, 1, 1, 0, 0): 62, (0, 1, 0, 1, 0): 19, (0, 1, 0, 0, 1): 1, (0, 0, 1, 1, 0): 76,
    (0, 0, 1, 0, 1): 11, (0, 0, 0, 1, 1): 8, (1, 1, 1, 0, 0): 1, (1, 1, 0, 1, 0): 1,
    (0, 1, 1, 1, 0): 4, (1, 1, 1, 1, 0): 1,
}


# Korean women held in sexual slavery by the Japanese military in Palembang: three lists (b, c, d), from Ball, Shin
# and Yang (2018), "There may have been 14 undocumented Korean 'comfort women' in Palembang, Indonesia", HRDAG
# technical report, Figure 1; as shipped in the R package MultipleSystemsEstimation 1.3.2 (Silverman; data `Korea`).
KOREA_LISTS = ("b", "c", "d")
# (b, c, d): count
KOREA = {(0, 0, 1): 41, (0, 1, 0): 5, (1, 0, 0): 5, (1, 1, 0): 54, (1, 0, 1): 6, (0, 1, 1): 0, (1, 1, 1): 12}
# Fixed-model population estimates (observed + exp(intercept)) of that package's Poisson log-linear fit, as its own
# test suite states them (tests/testthat/test-model-selection.R, "downhill search follows the expected Korea path"):
# hierarchy [12,3] (interaction b:c) and [12,23] (b:c and c:d).
KOREA_FIXED_MODEL_TOTALS = {(("b", "c"),): 268.7778, (("b", "c"), ("c", "d")): 157.16667}
