"""The self-contained HTML engagement report (``esn-pulse report``)."""
