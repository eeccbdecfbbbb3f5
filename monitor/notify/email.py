"""Email delivery: multipart/alternative (text + HTML) over SMTP with STARTTLS, TLS or none.

The whole SMTP conversation has one deadline (``channels.email.timeout``): a server that drips
its answers is cut off when it passes. Recipients the server refuses while it accepts others are
returned as a warning: the digest went out, and the relay records who did not get it.
"""

from __future__ import annotations

import email.policy
import smtplib
import socket
import ssl
from collections.abc import Callable
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate, parseaddr

from monitor.config import EmailChannel, Settings
from monitor.deadline import Deadline
from monitor.errors import DeliveryError, PermanentDeliveryError
from monitor.notify import Job


class _SMTP(smtplib.SMTP):
    """SMTP whose connection is guarded by a deadline from the moment it opens."""

    def __init__(self, deadline: Deadline, host: str, port: int, timeout: float) -> None:
        self.deadline = deadline
        super().__init__(host, port, timeout=timeout)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock = super()._get_socket(host, port, timeout)  # type: ignore[misc]
        self.deadline.guard(sock)
        return sock  # type: ignore[no-any-return]


class _SMTP_SSL(smtplib.SMTP_SSL):
    def __init__(self, deadline: Deadline, host: str, port: int, timeout: float,
                 context: ssl.SSLContext) -> None:
        self.deadline = deadline
        super().__init__(host, port, timeout=timeout, context=context)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock = super()._get_socket(host, port, timeout)  # type: ignore[misc]
        self.deadline.guard(sock)
        return sock  # type: ignore[no-any-return]


def build_message(settings: EmailChannel, job: Job, recipients: list[str]) -> EmailMessage:
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["Subject"] = job.subject
    msg["From"] = settings.sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = job.message_id
    safe_name = "".join(c if c.isalnum() or c in "-." else "-" for c in job.watchlist)
    msg["List-Id"] = f"monitor {safe_name} <{safe_name}.monitor.invalid>"
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(job.body_text, subtype="plain", charset="utf-8")
    msg.add_alternative(job.body_html, subtype="html", charset="utf-8")
    return msg


class EmailSender:
    def __init__(self, settings: EmailChannel, ssl_context: ssl.SSLContext | None = None):
        self.settings = settings
        self.ssl_context = ssl_context or ssl.create_default_context()

    def send(self, job: Job, recipients: list[str]) -> str | None:
        """Send the digest; return a warning naming the recipients the server refused while
        it accepted others (None when all accepted)."""
        try:
            msg = build_message(self.settings, job, recipients)
        except (ValueError, TypeError) as e:  # a header the config let through
            raise PermanentDeliveryError(f"cannot build the email: {e}") from e
        with Deadline(self.settings.timeout) as deadline:
            try:
                refused = self._converse(deadline, msg, recipients)
            except DeliveryError:
                raise
            except (smtplib.SMTPException, OSError) as e:
                if deadline.expired:
                    raise DeliveryError(f"SMTP {self.settings.host}:{self.settings.port}: the "
                                        f"conversation passed its deadline of "
                                        f"{self.settings.timeout:g}s") from e
                raise
        if not refused:
            return None
        return "SMTP refused recipients (the others got it): " + "; ".join(
            f"{rcpt} ({code} {_detail(text)[:100]})" for rcpt, (code, text) in
            sorted(refused.items()))

    def _converse(self, deadline: Deadline, msg: EmailMessage, recipients: list[str]
                  ) -> dict[str, tuple[int, bytes]]:
        s = self.settings
        try:
            smtp: smtplib.SMTP
            if s.tls == "ssl":
                smtp = _SMTP_SSL(deadline, s.host, s.port, s.timeout, self.ssl_context)
            else:
                smtp = _SMTP(deadline, s.host, s.port, s.timeout)
            with smtp:
                smtp.ehlo()
                if s.tls == "starttls":
                    if not smtp.has_extn("starttls"):
                        raise PermanentDeliveryError(
                            f"SMTP {s.host}:{s.port} does not offer STARTTLS: set "
                            f"channels.email.tls = \"ssl\" (port 465) or \"none\"")
                    smtp.starttls(context=self.ssl_context)
                    smtp.ehlo()
                if s.username:
                    smtp.login(s.username, s.password)
                return smtp.send_message(msg, from_addr=parseaddr(s.sender)[1],
                                         to_addrs=recipients)
        except smtplib.SMTPRecipientsRefused as e:
            codes = [code for code, _ in e.recipients.values()]
            text = "SMTP refused every recipient: " + "; ".join(
                f"{rcpt} ({code} {_detail(reason)[:100]})"
                for rcpt, (code, reason) in sorted(e.recipients.items()))
            if all(code >= 500 for code in codes):
                raise PermanentDeliveryError(text) from e
            raise DeliveryError(text) from e
        except smtplib.SMTPResponseException as e:
            text = f"SMTP {e.smtp_code}: {_detail(e.smtp_error)[:200]}"
            if e.smtp_code >= 500:
                raise PermanentDeliveryError(text) from e
            raise DeliveryError(text) from e
        except ssl.SSLCertVerificationError as e:
            raise DeliveryError(f"SMTP TLS certificate not trusted: {e.verify_message}") from e
        except (smtplib.SMTPException, OSError) as e:
            if deadline.expired:
                raise
            raise DeliveryError(f"SMTP {s.host}:{s.port} unreachable: "
                                f"{str(e) or type(e).__name__}") from e


def _detail(value: bytes | str) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return " ".join(text.split())


class _ToRecipients:
    """An ``EmailSender`` bound to one watchlist's recipients: a ``notify.Sender``."""

    def __init__(self, sender: EmailSender, recipients: list[str]) -> None:
        self.sender = sender
        self.recipients = recipients

    def send(self, job: Job, on_part: Callable[[int], None]) -> str | None:
        return self.sender.send(job, self.recipients)


def for_watchlist(settings: Settings, watchlist: str,
                  clock: Callable[[], datetime]) -> _ToRecipients:
    return _ToRecipients(EmailSender(settings.channels.email),
                         settings.recipients_of(watchlist))
