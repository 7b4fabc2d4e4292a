from pathlib import Path

from tests.faults.services import private_redis


def test_private_redis_keeps_its_data_over_a_restart_with_aof(tmp_path: Path) -> None:
    with private_redis(tmp_path / "redis") as server:
        server.client().set("k", "v")
        server.stop()
        server.start()
        assert server.client().get("k") == b"v"
        server.freeze()
        server.thaw()
        assert server.client().ping()
