"""peer_cli.py: what the Python test peers share: syslog-style log levels and a clean stop.

The C peers take `--log-level N` (syslog levels 0-7) and leave on SIGTERM / SIGINT; the Python
peers (lwm2m_mqtt_device.py, lwm2m_http_device.py) behave the same through these helpers.
"""
import logging
import signal
import sys


class Stop(Exception):
    """Raised by the signal handler to leave the main loop."""


def setup_logging(syslog_level):
    """Logs to stderr at the Python level matching a syslog level (7 debug ... 3 error)."""
    level = (logging.DEBUG if syslog_level >= 7 else logging.INFO if syslog_level == 6
             else logging.WARNING if syslog_level >= 4 else logging.ERROR
             if syslog_level == 3 else logging.CRITICAL)
    logging.basicConfig(stream=sys.stderr, level=level,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")


def stop_on_signals():
    """SIGTERM and SIGINT raise Stop in the main thread."""
    def on_signal(signum, frame):
        raise Stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


def ignore_signals():
    """Once stopping: a second signal must not interrupt the clean-up."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
