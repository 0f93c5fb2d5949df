"""An MQTT subscriber as a program of its own, to run on another host of a site
(:func:`tests.support.netns.site`): it subscribes with QoS 1 to ``TOPIC`` at ``HOST:PORT``, again
after every reconnection, with a session the broker keeps, and prints one JSON line per
subscription granted (``{"subscribed": true}``) and per message (``topic``, ``payload`` as text,
``retain``).

    python -m tests.support.mqtt_watch HOST PORT TOPIC --user NAME --password-file F --tls-ca CA
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import paho.mqtt.client as mqtt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("topic")
    parser.add_argument("--user", default="")
    parser.add_argument("--password-file", type=Path)
    parser.add_argument("--tls-ca", type=Path)
    parser.add_argument("--client-id", default="site-watcher")
    args = parser.parse_args()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=args.client_id, clean_session=False)
    if args.user:
        password = args.password_file.read_text().strip() if args.password_file else None
        client.username_pw_set(args.user, password)
    if args.tls_ca:
        client.tls_set(str(args.tls_ca))
    client.reconnect_delay_set(0.05, 0.5)
    client.on_connect = lambda c, *_: c.subscribe(args.topic, 1)
    client.on_subscribe = lambda *_: print(json.dumps({"subscribed": True}), flush=True)
    client.on_message = lambda _c, _u, message: print(json.dumps(
        {"topic": message.topic, "payload": message.payload.decode(), "retain": bool(message.retain)}), flush=True)
    client.connect(args.host, args.port)
    try:
        client.loop_forever(retry_first_connection=True)
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
