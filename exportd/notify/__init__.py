"""Telling people: the mail (composed here, sent through aiosmtplib) and the `notify` job."""
