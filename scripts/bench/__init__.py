"""Concert-Hub's benchmarks, as a package; ``scripts/bench_*.py`` are their entry points.

Each benchmark prints one JSON object on stdout and progress on stderr; none is part of the tests.
The pieces they share, meant for the next benchmark too:

=============== ==================================================================================
``servers``     child processes: concert-hub nodes, a private redis-server, migrations, tokens
``mariadb``     a fresh MariaDB database for a run, dropped at the end
``cpu``         CPU and RSS of pids and of the machine, from /proc; periodic sampling
``stats``       nearest-rank percentiles, millisecond summaries, latency histograms, error counts
``harness``     event loop, open-files limit, logging, worker processes, watchdog, JSON output
``sessions``    STOMP-over-WebSocket sessions on ``concert_hub_client``, opened at a rate
``rest``        a lean keep-alive HTTP/1.1 client and admin REST calls
=============== ==================================================================================

The benchmarks: ``fanout`` (with ``rabbitmq`` as a target to compare with), ``queue`` (the
waiting room), ``holds`` (a hot sale on MariaDB). Run them from the project's virtualenv
(``scripts/setup`` installs the project, which these import), e.g.
``.venv/bin/python scripts/bench_fanout.py --help``.
"""
