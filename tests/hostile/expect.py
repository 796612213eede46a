"""Expected answers of the hostile-input catalogue: small matchers over an
`Observed` (wire.py). Each names the answer the specs define: a stream
error condition (RFC 6120 §4.9.3), a stanza error condition (RFC 6120
§8.3.3, RFC 6121, XEP-0045, XEP-0060, XEP-0313, XEP-0363), an XEP-0198
<failed/>, an HTTP status (RFC 9110, RFC 6455), a BOSH terminal binding
condition (XEP-0124 §17, XEP-0206), "connection closed", or "ignored but
the session stays usable".

`check(obs)` returns the list of problems (empty: the answer is right);
`str(matcher)` is the expected answer in words, shown in reports.
"""

from __future__ import annotations

from wire import (FRAMING, SM, STANZA_ERRORS, Observed, brief, local_name, ns_of,
                  stanza_error_of)

# RFC 6120 §4.9.3.1: <bad-format/> may always stand in for the more
# specific XML-related conditions.
GENERIC_XML = "bad-format"


class Expect:
    def check(self, obs: Observed) -> list[str]:
        raise NotImplementedError

    def __and__(self, other: "Expect") -> "Expect":
        return AllOf(self, other)

    def __or__(self, other: "Expect") -> "Expect":
        return AnyOf(self, other)


class StreamError(Expect):
    """A stream error with one of `conditions`, and the stream closed
    (RFC 6120 §4.9.1.1). `app`: an application-specific condition element
    (namespace, name) that must be in the error too."""

    def __init__(self, *conditions: str, app: tuple[str, str] | None = None,
                 xml_generic: bool = False):
        self.conditions = set(conditions) | ({GENERIC_XML} if xml_generic else set())
        self.app = app

    def check(self, obs):
        if obs.stream_error is None:
            return [f"no stream error (wanted <{'/> or <'.join(sorted(self.conditions))}/>)"]
        problems = []
        if obs.stream_error not in self.conditions:
            problems.append(f"stream error <{obs.stream_error}/>, wanted "
                            f"<{'/> or <'.join(sorted(self.conditions))}/>")
        if self.app:
            ns, name = self.app
            if not any(ns_of(c.tag) == ns and local_name(c.tag) == name
                       for c in obs.stream_error_el):
                problems.append(f"stream error lacks <{name} xmlns='{ns}'/>")
        if not obs.closed and not obs.stream_end:
            problems.append("the stream stayed open after the stream error")
        return problems

    def __str__(self):
        s = "stream error " + " or ".join(f"<{c}/>" for c in sorted(self.conditions))
        if self.app:
            s += f" with <{self.app[1]} xmlns='{self.app[0]}'/>"
        return s + ", stream closed"


class StanzaError(Expect):
    """Every tracked reply (obs.replies) is a stanza error with one of
    `conditions`; at least `count` replies (RFC 6120 §8.3). `app`: an
    application condition (namespace, name) inside <error/>."""

    def __init__(self, *conditions: str, count: int = 1, app: tuple[str, str] | None = None):
        self.conditions = set(conditions)
        self.count = count
        self.app = app

    def check(self, obs):
        problems = []
        if len(obs.replies) < self.count:
            problems.append(f"{len(obs.replies)} replies, wanted {self.count} "
                            f"(stream error: {obs.stream_error}, closed: {obs.closed})")
        for r in obs.replies:
            cond = stanza_error_of(r)
            if cond not in self.conditions:
                problems.append(f"reply {brief(r, 240)} is not an error "
                                f"<{'/> or <'.join(sorted(self.conditions))}/>")
                break
            if self.app:
                ns, name = self.app
                if not any(ns_of(c.tag) == ns and local_name(c.tag) == name
                           for err in r if local_name(err.tag) == "error" for c in err):
                    problems.append(f"error lacks <{name} xmlns='{ns}'/>: {brief(r, 300)}")
                    break
        if obs.stream_error:
            problems.append(f"unexpected stream error <{obs.stream_error}/>")
        return problems

    def __str__(self):
        s = "stanza error " + " or ".join(f"<{c}/>" for c in sorted(self.conditions))
        if self.app:
            s += f" with <{self.app[1]}/>"
        return s + ("" if self.count == 1 else f" (x{self.count})")


class Result(Expect):
    """Every tracked reply is a success (IQ result, no error)."""

    def __init__(self, count: int = 1):
        self.count = count

    def check(self, obs):
        problems = []
        if len(obs.replies) < self.count:
            problems.append(f"{len(obs.replies)} replies, wanted {self.count}")
        for r in obs.replies:
            if r.get("type") == "error":
                problems.append(f"error reply: {brief(r, 300)}")
                break
        if obs.stream_error:
            problems.append(f"unexpected stream error <{obs.stream_error}/>")
        return problems

    def __str__(self):
        return "processed: " + ("a result" if self.count == 1 else f"{self.count} results")


class SmFailed(Expect):
    """XEP-0198 §6: <failed/> with a stanza error condition."""

    def __init__(self, *conditions: str):
        self.conditions = set(conditions)

    def check(self, obs):
        for el in obs.elements:
            if el.tag == f"{{{SM}}}failed":
                conds = {local_name(c.tag) for c in el if ns_of(c.tag) == STANZA_ERRORS}
                if conds & self.conditions:
                    return []
                return [f"<failed/> with {conds or 'no condition'}, wanted {self.conditions}"]
        return ["no <failed xmlns='urn:xmpp:sm:3'/>"]

    def __str__(self):
        return "XEP-0198 <failed/> with " + " or ".join(f"<{c}/>" for c in sorted(self.conditions))


class Usable(Expect):
    """Ignored or handled, and the session stays usable: no stream error,
    not closed, and a ping after the input is answered."""

    def check(self, obs):
        problems = []
        if obs.stream_error:
            problems.append(f"stream error <{obs.stream_error}/>")
        elif obs.closed:
            problems.append("connection closed")
        if obs.usable is not True:
            problems.append("the session did not answer a ping afterwards")
        return problems

    def __str__(self):
        return "session stays usable"


class Closed(Expect):
    """The connection ends (TLS failure, WebSocket protocol error): RFC 8446
    §6, RFC 6455 §7.1.7 "Fail the WebSocket Connection". `codes`: close
    codes (RFC 6455 §7.4.1) allowed if a close frame was sent."""

    def __init__(self, *codes: int):
        self.codes = set(codes)

    def check(self, obs):
        if not obs.closed:
            return ["the connection stayed open"]
        if obs.ws_close_code is not None and self.codes and obs.ws_close_code not in self.codes:
            return [f"WebSocket close code {obs.ws_close_code}, wanted one of {sorted(self.codes)}"]
        return []

    def __str__(self):
        s = "connection closed"
        if self.codes:
            s += " (close code " + " or ".join(map(str, sorted(self.codes))) + " if any)"
        return s


class WsClose(Expect):
    """A WebSocket close frame with one of `codes` (RFC 6455 §7.4.1)."""

    def __init__(self, *codes: int):
        self.codes = set(codes)

    def check(self, obs):
        if obs.ws_close_code in self.codes:
            return []
        return [f"close code {obs.ws_close_code}, wanted {' or '.join(map(str, sorted(self.codes)))}"]

    def __str__(self):
        return "WebSocket close " + " or ".join(map(str, sorted(self.codes)))


class WsStreamClosed(Expect):
    """RFC 7395 §3.6: after a stream error, <close/> and the WebSocket
    closed."""

    def check(self, obs):
        problems = []
        if not any(e.tag == f"{{{FRAMING}}}close" for e in obs.elements):
            problems.append("no <close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>")
        if not obs.closed:
            problems.append("the WebSocket stayed open")
        return problems

    def __str__(self):
        return "<close/> and the WebSocket closed"


class Http(Expect):
    """An HTTP status from `statuses`; for BOSH answers also the terminal
    binding condition (XEP-0124 §17.2) of the <body type='terminate'/>;
    `headers`: header name -> value that must be present."""

    def __init__(self, *statuses: int, terminate: str | tuple[str, ...] | None = None,
                 headers: dict[str, str] | None = None):
        self.statuses = set(statuses)
        self.terminate = (terminate,) if isinstance(terminate, str) else terminate
        self.headers = headers or {}

    def check(self, obs):
        problems = []
        if obs.http_status not in self.statuses:
            problems.append(f"HTTP {obs.http_status}, wanted {' or '.join(map(str, sorted(self.statuses)))}")
        if self.terminate:
            if obs.facts.get("type") != "terminate":
                problems.append(f"no <body type='terminate'/> (answer: {obs.http_body[:300]!r})")
            elif obs.facts.get("condition") not in self.terminate:
                problems.append(f"terminal condition {obs.facts.get('condition')!r}, "
                                f"wanted {' or '.join(self.terminate)}")
        for k, v in self.headers.items():
            got = obs.http_headers.get(k.lower())
            if got != v:
                problems.append(f"header {k}: {got!r}, wanted {v!r}")
        return problems

    def __str__(self):
        s = "HTTP " + " or ".join(map(str, sorted(self.statuses)))
        if self.terminate:
            s += " with <body type='terminate' condition='" + "' or '".join(self.terminate) + "'/>"
        for k, v in self.headers.items():
            s += f", {k}: {v}"
        return s


class Fact(Expect):
    """A property the entry recorded in obs.facts."""

    def __init__(self, key: str, want, text: str | None = None):
        self.key, self.want, self.text = key, want, text

    def check(self, obs):
        got = len(obs.replies) if self.key == "replies" else obs.facts.get(self.key)
        ok = self.want(got) if callable(self.want) else got == self.want
        return [] if ok else [f"{self.key} = {got!r}: {self}"]

    def __str__(self):
        return self.text or f"{self.key} == {self.want!r}"


class AllOf(Expect):
    def __init__(self, *parts: Expect):
        self.parts = parts

    def check(self, obs):
        return [p for m in self.parts for p in m.check(obs)]

    def __str__(self):
        return "; ".join(str(p) for p in self.parts)


class AnyOf(Expect):
    def __init__(self, *options: Expect):
        self.options = options

    def check(self, obs):
        results = [m.check(obs) for m in self.options]
        if any(not r for r in results):
            return []
        return ["none of the allowed answers: " + " / ".join("; ".join(r) for r in results)]

    def __str__(self):
        return " OR ".join(f"({o})" for o in self.options)
