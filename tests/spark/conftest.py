"""The one local Spark session shared by every Spark test (starting one costs seconds), with
upliftlab's settings (ANSI on, UTC); the tests are skipped, saying why, without PySpark or Java."""

from __future__ import annotations

import time

import pytest


def pytest_collection_modifyitems(items):
    """Every test in this folder starts or uses Spark: slow (out of `pytest -m "not slow"`)."""
    for item in items:
        if "/tests/spark/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def spark():
    from upliftlab.engine.spark import local_session, spark_available

    reason = spark_available()
    if reason is not None:
        pytest.skip(f"Spark tests need PySpark and Java: {reason} (`make test` installs both)")
    start = time.perf_counter()
    # a small JVM: the machine is shared (the tests' data are a few thousand customers)
    session = local_session("local[2]", conf={"spark.driver.memory": "1g"},
                            app_name="upliftlab-tests")
    # recorded for the report (pytest -s shows it): start-up with LOCAL_CONF on this machine
    print(f"\nSpark local[2] session started in {time.perf_counter() - start:.1f} s")
    # the tests that expect a Spark error would otherwise print its JVM stack trace
    session.sparkContext.setLogLevel("OFF")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def engine(spark):
    from upliftlab.engine.spark import SparkEngine

    return SparkEngine(spark)
