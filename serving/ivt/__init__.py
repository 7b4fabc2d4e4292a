"""Invalid traffic (IVT, in the MRC's terms): what serving refuses or does not bill.

- `crawlers`: the maintained crawler list (`crawleruseragents`), compiled once per process
  and consulted only when a user agent is first described (the Enricher caches the result).
- `networks`: data-center and hosting address ranges in sorted integer ranges searched by
  bisection (IPv4 and IPv6), reloaded when the refresh job publishes a new list.
- `judge`: what an impression or click is judged at event time (general rules in process,
  behavioural counters in the same Lua call that records it, `serving.spend`).
- `events`: what the tracking doors ask of it (`EventScreen`): an event's general reason,
  its judgement, the published rules, the frequency count an invalid impression takes back.
- `stuffing`: pixel stuffing, from the size the markup's `measurable` beacon reports; the
  billed impression is taken back in the beacon's Lua call.
"""
