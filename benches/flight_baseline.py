"""Clients and baselines of the Flight SQL benchmark.

    python flight_baseline.py measure AUTOLAKE_PORT PASSWORD TABLE_PATH ITERATIONS
    python flight_baseline.py serve-pyarrow TABLE_PATH PORT      (internal)

`measure` prints one JSON object:
- autolake: ADBC (adbc_driver_flightsql) reading `SELECT * FROM lineitem`
  from `autolake serve` (autolake_first: the first read, which decodes the
  table's Parquet files), and the time to the first batch of `SELECT 1`;
- autolake_pyarrow: the `pyarrow.flight` client reading the same query
  from `autolake serve` over the Flight SQL protocol (GetFlightInfo with a
  CommandStatementQuery, then DoGet) — the same client as the anchor, so
  the two servers are compared like for like;
- pyarrow_flight: a `pyarrow.flight` server (another Python process)
  serving the same rows, read with `pyarrow.flight` in turn with
  autolake_pyarrow (one read of each per round);
- psql: PostgreSQL's `psql` (libpq) reading the same rows from a table
  loaded with COPY.
Throughput is the Arrow size of the rows over the best wall time.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

import pyarrow as pa
import pyarrow.csv
import pyarrow.flight as flight
from deltalake import DeltaTable


def load(path):
    return DeltaTable(path).to_pyarrow_table()


class Server(flight.FlightServerBase):
    def __init__(self, location, table):
        super().__init__(location)
        self.table = table

    def do_get(self, context, ticket):
        return flight.RecordBatchStream(self.table)


def serve_pyarrow(path, port):
    table = load(path)
    server = Server(f"grpc://127.0.0.1:{port}", table)
    print("ready", flush=True)
    server.serve()


def varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field(number, payload):
    """A length-delimited protobuf field."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def statement_query(sql):
    """A Flight SQL CommandStatementQuery packed in google.protobuf.Any."""
    command = field(1, sql.encode())
    type_url = b"type.googleapis.com/arrow.flight.protocol.sql.CommandStatementQuery"
    return field(1, type_url) + field(2, command)


def timed(iterations, run):
    times = []
    for _ in range(iterations):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return times


def best(iterations, run):
    return min(timed(iterations, run))


def measure(port, password, path, iterations):
    import adbc_driver_flightsql.dbapi as flight_sql

    reference = load(path)
    nbytes = reference.nbytes
    rows = reference.num_rows
    out = {"rows": rows, "bytes": nbytes}

    conn = flight_sql.connect(
        f"grpc://127.0.0.1:{port}",
        db_kwargs={"username": "admin", "password": password},
    )
    cur = conn.cursor()

    def small():
        cur.execute("SELECT 1 AS one")
        cur.fetch_arrow_table()

    small()
    out["autolake_first_batch_ms"] = best(20, small) * 1000

    got = {}

    def full():
        cur.execute("SELECT * FROM lineitem")
        got["table"] = cur.fetch_arrow_table()

    times = timed(iterations, full)
    # The server's first read of the table decodes its Parquet files; later
    # ones may come from its scan cache.
    out["autolake_first_s"] = times[0]
    out["autolake_s"] = min(times)
    assert got["table"].num_rows == rows, got["table"].num_rows
    cur.close()
    conn.close()

    # The pyarrow.flight client against autolake serve (Flight SQL by hand),
    # and against pyarrow.flight serving the same rows from another process.
    # The two are read in turn, one read of each per round, so that what
    # else the machine does during the run weighs on both alike.
    client = flight.connect(f"grpc://127.0.0.1:{port}")
    options = flight.FlightCallOptions(headers=[client.authenticate_basic_token("admin", password)])
    descriptor = flight.FlightDescriptor.for_command(statement_query("SELECT * FROM lineitem"))

    def pyarrow_autolake():
        info = client.get_flight_info(descriptor, options)
        got["pa_autolake"] = client.do_get(info.endpoints[0].ticket, options).read_all()

    with socket_port() as pa_port:
        server = subprocess.Popen(
            [sys.executable, __file__, "serve-pyarrow", path, str(pa_port)],
            stdout=subprocess.PIPE,
        )
        try:
            server.stdout.readline()
            anchor = flight.connect(f"grpc://127.0.0.1:{pa_port}")

            def pyarrow_full():
                got["pa"] = anchor.do_get(flight.Ticket(b"lineitem")).read_all()

            ours, theirs = [], []
            for _ in range(iterations):
                ours += timed(1, pyarrow_autolake)
                theirs += timed(1, pyarrow_full)
            out["autolake_pyarrow_s"] = min(ours)
            out["pyarrow_flight_s"] = min(theirs)
            assert got["pa_autolake"].num_rows == rows
            assert got["pa"].num_rows == rows
            anchor.close()
        finally:
            server.kill()
    client.close()

    # psql (libpq) reading the same rows from PostgreSQL.
    psql = ["psql", "-h", "127.0.0.1", "-U", os.environ.get("PGUSER", "postgres"), "-d", "test", "-q"]
    with tempfile.TemporaryDirectory() as tmp:
        csv = os.path.join(tmp, "lineitem.csv")
        pyarrow.csv.write_csv(reference, csv, pyarrow.csv.WriteOptions(include_header=False))
        columns = ", ".join(
            f"{f.name} {'bigint' if pa.types.is_int64(f.type) else 'integer' if pa.types.is_integer(f.type) else 'double precision'}"
            for f in reference.schema
        )
        subprocess.run(
            psql + ["-c", "DROP TABLE IF EXISTS bench_lineitem", "-c", f"CREATE TABLE bench_lineitem ({columns})",
                    "-c", f"\\copy bench_lineitem FROM '{csv}' CSV"],
            check=True,
        )

    def psql_full():
        subprocess.run(psql + ["-At", "-c", "SELECT * FROM bench_lineitem", "-o", "/dev/null"], check=True)

    try:
        out["psql_s"] = best(iterations, psql_full)
    finally:
        subprocess.run(psql + ["-c", "DROP TABLE IF EXISTS bench_lineitem"], check=True)
    print(json.dumps(out))


class socket_port:
    def __enter__(self):
        import socket

        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        return port

    def __exit__(self, *exc):
        return False


if __name__ == "__main__":
    if sys.argv[1] == "serve-pyarrow":
        serve_pyarrow(sys.argv[2], int(sys.argv[3]))
    else:
        measure(int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5]))
