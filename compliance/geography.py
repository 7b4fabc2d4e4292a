"""Where GDPR applies, for requests that do not say (`regs.gdpr` absent).

Plain data with no imports, so that settings can use it as the default of `GDPR_COUNTRIES`.
"""

# The EU 27, the EEA's Iceland, Liechtenstein and Norway, the UK (UK GDPR) and Switzerland
# (its FADP is served through the TCF the same way): ISO 3166-1 alpha-2.
GDPR_COUNTRIES = frozenset({
    "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE",
    "IT", "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE",  # EU 27
    "IS", "LI", "NO",  # the rest of the EEA
    "GB", "CH",
})  # fmt: skip


def parse_country_list(values: list[str], setting: str) -> frozenset[str]:
    """Upper-cased two-letter codes; a value that is not one raises ValueError naming it."""
    codes = set()
    for value in values:
        code = value.strip().upper()
        if not code:
            continue
        if len(code) != 2 or not code.isascii() or not code.isalpha():
            raise ValueError(f"{setting}: {value!r} is not an ISO 3166-1 alpha-2 country code")
        codes.add(code)
    return frozenset(codes)
