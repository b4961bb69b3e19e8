"""Twilio's edge: webhook signature checks, call tokens, TwiML, the REST client, the functions."""
