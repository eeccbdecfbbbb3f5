"""Email delivery: multipart/alternative (text + HTML) over SMTP with STARTTLS, TLS or none."""

from __future__ import annotations

import email.policy
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate

from monitor.config import EmailChannel
from monitor.errors import DeliveryError, PermanentDeliveryError
from monitor.store.outbox import DigestJob


def build_message(settings: EmailChannel, job: DigestJob, recipients: list[str]) -> EmailMessage:
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

    def send(self, job: DigestJob, recipients: list[str]) -> None:
        s = self.settings
        msg = build_message(s, job, recipients)
        try:
            smtp: smtplib.SMTP
            if s.tls == "ssl":
                smtp = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout,
                                        context=self.ssl_context)
            else:
                smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
            with smtp:
                smtp.ehlo()
                if s.tls == "starttls":
                    smtp.starttls(context=self.ssl_context)
                    smtp.ehlo()
                if s.username:
                    smtp.login(s.username, s.password)
                smtp.send_message(msg, from_addr=s.sender, to_addrs=recipients)
        except smtplib.SMTPRecipientsRefused as e:
            codes = [code for code, _ in e.recipients.values()]
            text = f"SMTP refused every recipient: {sorted(set(codes))}"
            if all(code >= 500 for code in codes):
                raise PermanentDeliveryError(text) from e
            raise DeliveryError(text) from e
        except smtplib.SMTPResponseException as e:
            detail = e.smtp_error.decode("utf-8", "replace") if isinstance(
                e.smtp_error, bytes) else str(e.smtp_error)
            text = f"SMTP {e.smtp_code}: {' '.join(detail.split())[:200]}"
            if e.smtp_code >= 500:
                raise PermanentDeliveryError(text) from e
            raise DeliveryError(text) from e
        except ssl.SSLCertVerificationError as e:
            raise DeliveryError(f"SMTP TLS certificate not trusted: {e.verify_message}") from e
        except (smtplib.SMTPException, OSError) as e:
            raise DeliveryError(f"SMTP {s.host}:{s.port} unreachable: "
                                f"{str(e) or type(e).__name__}") from e
