"""The web layer: error rendering, body limits, the portal."""
