"""Black-box runs: a real gateway between real servers, driven over HTTP."""
