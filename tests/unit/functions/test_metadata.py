"""GetMetadataPropertyValue: the reference's forms, from the system columns the runtime adds
today (PartitionId, EventEnqueuedUtcTime) and from an EventRecord's metadata."""

from __future__ import annotations

from datetime import UTC, datetime

from headwater.functions import EventRecord
from headwater.plugins.functions import get_metadata_property_value as gmpv
from headwater.services.processing.testing import run_query

T = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def test_documented_forms_from_system_columns_through_the_engine() -> None:
    # the processing runtime adds these two columns to Event Hubs inputs (engine_adapter)
    events = [{"v": 1, "PartitionId": 3, "EventEnqueuedUtcTime": "2024-05-01T12:00:00Z"}]
    out = run_query("SELECT GetMetadataPropertyValue(ehInput, '[EventHub].[EventEnqueuedUtcTime]') AS mytime,"
                    " GetMetadataPropertyValue(ehInput, 'EventHub.PartitionId') AS pid,"
                    " GetMetadataPropertyValue(ehInput, '[EventHub].[EventProcessedUtcTime]') AS processed,"
                    " GetMetadataPropertyValue(ehInput, 'EventHub') AS myEHPropertiesRecord,"
                    " GetMetadataPropertyValue(ehInput, '[User].[missing]') AS user"
                    " FROM ehInput", {"ehInput": events}, raw=True)["output"][0]
    assert out["mytime"] == "2024-05-01T12:00:00Z" and out["pid"] == 3 and out["user"] is None
    assert isinstance(out["processed"], datetime) and out["processed"].year >= 2024
    assert out["myEHPropertiesRecord"]["PartitionId"] == 3


def test_metadata_of_an_event_record() -> None:
    rec = EventRecord({"v": 1}, {"EventEnqueuedUtcTime": T, "PartitionId": "0", "Offset": "4096",
                                 "SequenceNumber": 17, "PartitionKey": "dev-1", "EventId": "0:17",
                                 "User": {"EventType": "hello", "priority": 1}})
    assert dict(rec) == {"v": 1}  # the payload is unchanged
    assert gmpv(rec, "[EventHub].[EventEnqueuedUtcTime]") == T
    assert gmpv(rec, "[EventHub].[SequenceNumber]") == 17
    assert gmpv(rec, "EventHub.partitionkey") == "dev-1"
    assert gmpv(rec, "[User].[EventType]") == "hello" and gmpv(rec, "[User].[Priority]") == 1
    assert gmpv(rec, "User") == {"EventType": "hello", "priority": 1}
    assert gmpv(rec, "EventId") == "0:17"
    whole = gmpv(rec, "EventHub")
    assert whole["Offset"] == "4096" and "User" not in whole and isinstance(whole["EventProcessedUtcTime"], datetime)
    assert gmpv(rec, "[EventHub].[Nope]") is None and gmpv(None, "EventHub") is None
    assert gmpv(EventRecord({}, {"PartitionId": "1", "SequenceNumber": 9}), "EventId") == "1:9"
    assert gmpv(EventRecord({}, {"PartitionId": "1"}), "EventId") is None
