"""Email notifications: messages written in the transaction of the change that causes them,
sent by `sender.send_pending_mail` over SMTP, or kept in the database outbox."""
