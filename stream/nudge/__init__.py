"""The nudge service: acts on flagged-user records with e-mails and webhooks, per a rules file,
with consent, suppression, exactly-once delivery state in Redis and an audit of every decision."""
