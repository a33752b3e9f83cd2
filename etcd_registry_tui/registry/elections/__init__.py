"""Elections and locks: the campaign library other services use (campaign), and the
dashboard's discovery of every election under a prefix (state, watch, session)."""
