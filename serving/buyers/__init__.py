"""External OpenRTB buyers at serving time: whom to call, calling them in parallel inside the
request's deadline, and which of their bids may enter the auction.

A `BuyerPool` (`pool`) lives for the life of a serving process, on its event loop. It owns
one aiohttp session (`http`), so connections to each buyer are kept alive and reused across
requests (a TLS handshake per request would eat most of a 150 ms budget), and the
process-local state that makes calling buyers safe at volume:

- the buyer's QPS cap: with a fleet (`serving.limits.fleet`, what a serving app passes) it
  holds across every serving process, from tokens each process claims ahead through the
  event sink's batches; without one (a pool on its own) it is a token bucket per process
  (`serving.limits.local`);
- a circuit breaker per buyer (`serving.limits.local`). After `breaker_failures` consecutive
  failures (a timeout, a connection error, an HTTP 5xx or an unreadable answer) the circuit
  opens and the buyer is not called. Once `breaker_cooldown` seconds have passed, one probe
  request is let through (half-open) while other requests still skip the buyer; its success
  closes the circuit, its failure opens it for another cooldown. Any answer that is not a
  failure (a bid, a no-bid, an invalid bid, a 4xx) counts as a success: the buyer is up,
  whatever it thinks of us. With a fleet, every call's verdict is also shared, and the
  circuit opens for the whole fleet when its error rate crosses the threshold;
- outcome counters per (buyer, reason) and latency sums, flushed to Redis in one pipeline
  about once a second, never per request; and a latency histogram per buyer since the
  process started, published with the process's figures (`serving.metrics`) (`counters`);
- win, billing and loss notices, fired without waiting and bounded in number (`notices`).

The decision to call is the consent policy's (`Permissions.for_buyer`, with the buyer's own
GVL vendor id), then COPPA (`requests`, which also writes the imps the buyer is asked about),
then the time left, the circuit and the QPS cap. Every bid is checked against the request
before it may compete (`answers`, `bids`); a bid that fails is dropped and counted with its
reason (`outcomes`). Prices are converted into the platform currency with the pool's FX
table (`fx[code]` = platform units one unit of `code` is worth), as `LineItemSnap.fx_rate`
is.

Nothing here touches Django or the database.
"""
