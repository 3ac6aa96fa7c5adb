"""E-mail: the messages the box office sends (:mod:`.messages`), how they leave the node (SMTP,
or ``.eml`` files in embedded mode: :mod:`.transport`), and the outbox sender that builds and
sends each queued message by its kind (:mod:`.sender`)."""
