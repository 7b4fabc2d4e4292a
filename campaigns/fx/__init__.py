"""Exchange rates: the configured constants (`FX_RATES`) and the refreshed reference rates."""
