"""Raw protocol exchanges for ``test_accounts.test_raw_exchange``: each case is a config
file text and a list of ``(connection, bytes)`` steps (see ``natsutil.transcript``).

The expected transcripts, per connection, are in ``EXPECTED``: they were recorded from
nats-server 2.15.1 and the nats-server half of the test keeps checking them."""

from __future__ import annotations

from natsutil import connect_op


def login(user: str) -> bytes:
    return connect_op(user=user, **{"pass": user})


PERMS_CONF = """
authorization {
  users: [
    {user: p, password: p, permissions: {
      publish: {allow: ["pub.>", "req.>"], deny: ["pub.secret"]}
      subscribe: {allow: ["sub.>", "work.* workers", "_INBOX.>", "q.>"], deny: ["sub.secret.>"]}
    }}
    {user: resp, password: resp, permissions: {subscribe: "svc.>", allow_responses: true}}
    {user: resp2, password: resp2, permissions: {
      subscribe: "svc.>", publish: "other.>", allow_responses: {max: 2, expires: "1m"}
    }}
    {user: resp3, password: resp3, permissions: {
      subscribe: "svc.>", allow_responses: {max: 5, expires: "200ms"}
    }}
    {user: admin, password: admin}
  ]
}
"""

ACCOUNTS_CONF = """
accounts {
  A {
    users: [{user: a, password: a}, {user: a2, password: a2}]
    exports: [
      {stream: "ev.>"}
      {stream: "priv.>", accounts: [B]}
      {service: "svc.echo"}
    ]
  }
  B {
    users: [{user: b, password: b}]
    imports: [
      {stream: {account: A, subject: "ev.>"}, prefix: "fromA"}
      {stream: {account: A, subject: "priv.>"}, to: "imported.>"}
      {service: {account: A, subject: "svc.echo"}, to: "echo"}
    ]
  }
  C {
    users: [{user: c, password: c}]
    imports: [{stream: {account: A, subject: "ev.>"}}]
  }
  L {
    users: [{user: l1, password: l1}, {user: l2, password: l2}]
    limits: {max_connections: 1}
  }
}
"""

CASES: dict[str, tuple[str, list[tuple[str, bytes]]]] = {
    # Publish allow/deny, HPUB too; the reply subject of an allowed PUB is not checked.
    "pub-violations": (PERMS_CONF, [
        ("p", login("p")
         + b"PUB pub.ok 1\r\na\r\nPUB pub.secret 1\r\nb\r\nPUB other 1\r\nc\r\n"
         + b"HPUB other 12 13\r\nNATS/1.0\r\n\r\nd\r\nPUB req.x _INBOX.1 1\r\ne\r\n"),
    ]),
    # Subscribe allow/deny with and without queue groups; the connection stays usable.
    "sub-violations": (PERMS_CONF, [
        ("p", login("p")
         + b"SUB sub.a 1\r\nSUB other 2\r\nSUB sub.secret.x 3\r\nSUB sub.secret.* q 4\r\n"
         + b"SUB q.a _sys_ 5\r\nSUB q.a grp 6\r\nPUB pub.x 2\r\nok\r\n"),
        ("admin", login("admin") + b"PUB sub.a 1\r\nx\r\nPUB q.a 1\r\ny\r\n"),
    ]),
    # "work.* workers": only queue subscriptions in group "workers" on work.* (a subject
    # matching the pattern token-wise, "work.>" and "work.*" included). One member at a
    # time, as the member a queue message goes to is picked at random.
    "queue-allow-list": (PERMS_CONF, [
        ("p", login("p")
         + b"SUB work.x workers 1\r\nSUB work.x 2\r\nSUB work.x other 3\r\n"
         + b"SUB work.y.z workers 4\r\nSUB work.x.> workers 5\r\n"),
        ("admin", login("admin") + b"PUB work.x 1\r\na\r\nPUB work.y.z 1\r\nb\r\n"),
        ("p", b"UNSUB 1\r\nSUB work.> workers 6\r\n"),
        ("admin", b"PUB work.x 1\r\nc\r\nPUB work.y.z 1\r\nd\r\n"),
        ("p", b"UNSUB 6\r\nSUB work.* workers 7\r\n"),
        ("admin", b"PUB work.y 1\r\ne\r\nPUB work.y.z 1\r\nf\r\n"),
    ]),
    # A wildcard subscription overlapping the deny list is allowed, but denied subjects
    # are not delivered to it (plain or queue); ">" itself is not allowed.
    "deny-wildcard-delivery": (PERMS_CONF, [
        ("p", login("p") + b"SUB sub.> 1\r\nSUB sub.* 2\r\nSUB > 3\r\nSUB sub.> g 4\r\n"),
        ("admin", login("admin")
         + b"PUB sub.a 1\r\na\r\nPUB sub.secret.x 1\r\nb\r\nPUB sub.secret 1\r\nc\r\n"
         + b"PUB sub.b.c 1\r\nd\r\nPUB sub.secret.x.y 1\r\ne\r\n"),
    ]),
    # allow_responses: true — one reply to a received request's reply subject, nothing else
    # (no publish permissions given: everything else is denied).
    "allow-responses-max-1": (PERMS_CONF, [
        ("resp", login("resp") + b"SUB svc.> 1\r\n"),
        ("admin", login("admin") + b"SUB inbox.> 9\r\nPUB svc.a inbox.1 1\r\nq\r\n"),
        ("resp", b"PUB inbox.1 2\r\nr1\r\nPUB inbox.1 2\r\nr2\r\nPUB svc.a 1\r\nx\r\n"
         + b"PUB inbox.2 1\r\ny\r\n"),
    ]),
    # allow_responses {max: 2}: two replies, plus its own publish allow list.
    "allow-responses-max-2": (PERMS_CONF, [
        ("resp2", login("resp2") + b"SUB svc.> 1\r\n"),
        ("admin", login("admin") + b"SUB inbox.> 9\r\nPUB svc.a inbox.1 1\r\nq\r\n"),
        ("resp2", b"PUB inbox.1 2\r\nr1\r\nPUB inbox.1 2\r\nr2\r\nPUB inbox.1 2\r\nr3\r\n"
         + b"PUB other.x 1\r\nx\r\nPUB svc.a 1\r\ny\r\n"),
    ]),
    # allow_responses {expires: "200ms"}: a reply after the expiry is a violation.
    "allow-responses-expires": (PERMS_CONF, [
        ("resp3", login("resp3") + b"SUB svc.> 1\r\n"),
        ("admin", login("admin") + b"SUB inbox.> 9\r\nPUB svc.a inbox.1 1\r\nq\r\n"
         + b"PUB svc.a inbox.2 1\r\nq\r\n"),
        ("resp3", b"PUB inbox.1 1\r\n1\r\n"),
        ("sleep", 0.5),
        ("resp3", b"PUB inbox.2 1\r\n2\r\nPUB inbox.1 1\r\n3\r\n"),
    ]),
    # Reply subjects reserved for the server: "_R_." (service imports), "$JS.ACK." and
    # "$GR." (gateway replies) — refused for any client, permissions or not.
    "reserved-reply-prefixes": (PERMS_CONF, [
        ("admin", login("admin") + b"SUB x 1\r\n"
         + b"PUB x _R_. 1\r\na\r\nPUB x _R_.abc 1\r\nb\r\nPUB x _r_.abc 1\r\nc\r\n"
         + b"HPUB x _R_.h 12 13\r\nNATS/1.0\r\n\r\nd\r\n"
         + b"PUB x $JS.ACK.s.c 1\r\ne\r\nPUB x $JS.ACK. 1\r\nf\r\nPUB x $JS.ACK 1\r\ng\r\n"
         + b"PUB x $GR.abc 1\r\nh\r\nPUB x $GR. 1\r\ni\r\nPUB x $GNR.abc 1\r\nj\r\n"
         + b"PUB x _INBOX.abc 1\r\nk\r\n"),
        ("p", login("p") + b"SUB sub.x 1\r\nPUB pub.x _R_.abc 1\r\nl\r\n"),
    ]),
    # Queue group "_sys_" is reserved for the server, even without any permissions.
    # (One queue group per subject: nats-server delivers to several groups in random order.)
    "sys-queue-group": (PERMS_CONF, [
        ("admin", login("admin")
         + b"SUB x _sys_ 1\r\nSUB x _SYS_ 2\r\nSUB y _sys_x 3\r\nPUB x 1\r\na\r\n"
         + b"PUB y 1\r\nb\r\n"),
    ]),
    # Accounts are isolated; stream imports deliver under a prefix or a "to" mapping,
    # headers included; an unprefixed import keeps the subject.
    "stream-imports": (ACCOUNTS_CONF, [
        ("b", login("b") + b"SUB fromA.ev.> 1\r\nSUB imported.> 2\r\nSUB ev.> 3\r\nSUB priv.> 4\r\n"),
        ("c", login("c") + b"SUB > 1\r\n"),
        ("a", login("a") + b"SUB > 1\r\nPUB ev.x 2\r\nhi\r\nPUB priv.y 2\r\npv\r\n"
         + b"HPUB ev.h 12 14\r\nNATS/1.0\r\n\r\nhh\r\nPUB other 1\r\no\r\n"),
        ("b", b"PUB other 1\r\nb\r\nPUB ev.x 1\r\nb\r\n"),
    ]),
    # An account's max_connections: the next connection is refused with an error.
    "account-max-connections": (ACCOUNTS_CONF, [
        ("l1", login("l1")),
        ("l2", login("l2")),
    ]),
}


EXPECTED: dict[str, dict[str, bytes]] = {
    'pub-violations': {
        'p': b'-ERR \'Permissions Violation for Publish to "pub.secret"\'\r\n-ERR \'Permissions Violation for Publish to "other"\'\r\n-ERR \'Permissions Violation for Publish to "other"\'\r\nPONG\r\nPONG\r\n',
    },
    'sub-violations': {
        'p': b'-ERR \'Permissions Violation for Subscription to "other"\'\r\n-ERR \'Permissions Violation for Subscription to "sub.secret.x"\'\r\n-ERR \'Permissions Violation for Subscription to "sub.secret.*" using queue "q"\'\r\n-ERR \'Permissions Violation for Subscription to "q.a" using queue "_sys_"\'\r\nPONG\r\nMSG sub.a 1 1\r\nx\r\nMSG q.a 6 1\r\ny\r\nPONG\r\n',
        'admin': b'PONG\r\nPONG\r\n',
    },
    'queue-allow-list': {
        'p': b'-ERR \'Permissions Violation for Subscription to "work.x"\'\r\n-ERR \'Permissions Violation for Subscription to "work.x" using queue "other"\'\r\n-ERR \'Permissions Violation for Subscription to "work.y.z" using queue "workers"\'\r\n-ERR \'Permissions Violation for Subscription to "work.x.>" using queue "workers"\'\r\nPONG\r\nMSG work.x 1 1\r\na\r\nPONG\r\nMSG work.x 6 1\r\nc\r\nMSG work.y.z 6 1\r\nd\r\nPONG\r\nMSG work.y 7 1\r\ne\r\nPONG\r\n',
        'admin': b'PONG\r\nPONG\r\nPONG\r\nPONG\r\n',
    },
    'deny-wildcard-delivery': {
        'p': b'-ERR \'Permissions Violation for Subscription to ">"\'\r\nPONG\r\nMSG sub.a 1 1\r\na\r\nMSG sub.a 2 1\r\na\r\nMSG sub.a 4 1\r\na\r\nMSG sub.secret 1 1\r\nc\r\nMSG sub.secret 2 1\r\nc\r\nMSG sub.secret 4 1\r\nc\r\nMSG sub.b.c 1 1\r\nd\r\nMSG sub.b.c 4 1\r\nd\r\nPONG\r\n',
        'admin': b'PONG\r\nPONG\r\n',
    },
    'allow-responses-max-1': {
        'resp': b'PONG\r\nMSG svc.a 1 inbox.1 1\r\nq\r\n-ERR \'Permissions Violation for Publish to "inbox.1"\'\r\n-ERR \'Permissions Violation for Publish to "svc.a"\'\r\n-ERR \'Permissions Violation for Publish to "inbox.2"\'\r\nPONG\r\nPONG\r\n',
        'admin': b'PONG\r\nMSG inbox.1 9 2\r\nr1\r\nPONG\r\n',
    },
    'allow-responses-max-2': {
        'resp2': b'PONG\r\nMSG svc.a 1 inbox.1 1\r\nq\r\n-ERR \'Permissions Violation for Publish to "inbox.1"\'\r\n-ERR \'Permissions Violation for Publish to "svc.a"\'\r\nPONG\r\nPONG\r\n',
        'admin': b'PONG\r\nMSG inbox.1 9 2\r\nr1\r\nMSG inbox.1 9 2\r\nr2\r\nPONG\r\n',
    },
    'allow-responses-expires': {
        'resp3': b'PONG\r\nMSG svc.a 1 inbox.1 1\r\nq\r\nMSG svc.a 1 inbox.2 1\r\nq\r\nPONG\r\n-ERR \'Permissions Violation for Publish to "inbox.2"\'\r\n-ERR \'Permissions Violation for Publish to "inbox.1"\'\r\nPONG\r\nPONG\r\n',
        'admin': b'PONG\r\nMSG inbox.1 9 1\r\n1\r\nPONG\r\n',
    },
    'reserved-reply-prefixes': {
        'admin': b'-ERR \'Permissions Violation for Publish with Reply of "_R_."\'\r\n-ERR \'Permissions Violation for Publish with Reply of "_R_.abc"\'\r\nMSG x 1 _r_.abc 1\r\nc\r\n-ERR \'Permissions Violation for Publish with Reply of "_R_.h"\'\r\n-ERR \'Permissions Violation for Publish with Reply of "$JS.ACK.s.c"\'\r\nMSG x 1 $JS.ACK. 1\r\nf\r\nMSG x 1 $JS.ACK 1\r\ng\r\n-ERR \'Permissions Violation for Publish with Reply of "$GR.abc"\'\r\nMSG x 1 $GR. 1\r\ni\r\nMSG x 1 $GNR.abc 1\r\nj\r\nMSG x 1 _INBOX.abc 1\r\nk\r\nPONG\r\nPONG\r\n',
        'p': b'-ERR \'Permissions Violation for Publish with Reply of "_R_.abc"\'\r\nPONG\r\nPONG\r\n',
    },
    'sys-queue-group': {
        'admin': b'-ERR \'Permissions Violation for Subscription to "x" using queue "_sys_"\'\r\nMSG x 2 1\r\na\r\nMSG y 3 1\r\nb\r\nPONG\r\nPONG\r\n',
    },
    'stream-imports': {
        'b': b'PONG\r\nMSG fromA.ev.x 1 2\r\nhi\r\nMSG imported.y 2 2\r\npv\r\nHMSG fromA.ev.h 1 12 14\r\nNATS/1.0\r\n\r\nhh\r\nMSG ev.x 3 1\r\nb\r\nPONG\r\nPONG\r\n',
        'c': b'PONG\r\nMSG ev.x 1 2\r\nhi\r\nHMSG ev.h 1 12 14\r\nNATS/1.0\r\n\r\nhh\r\nPONG\r\n',
        'a': b'MSG ev.x 1 2\r\nhi\r\nMSG priv.y 1 2\r\npv\r\nHMSG ev.h 1 12 14\r\nNATS/1.0\r\n\r\nhh\r\nMSG other 1 1\r\no\r\nPONG\r\nPONG\r\n',
    },
    'account-max-connections': {
        'l1': b'PONG\r\nPONG\r\n',
        'l2': b"-ERR 'maximum account active connections exceeded'\r\n<EOF>",
    },
}
