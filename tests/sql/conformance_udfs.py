"""Python ports of the conformance cases' JavaScript UDFs (``udfs`` in the case files)."""

from __future__ import annotations


def udfLen(arg1):  # noqa: N802 - the case's name
    """``function main(arg1) { return arg1.length; }``"""
    return None if arg1 is None else len(arg1)


def Hex2Int(hexValue):  # noqa: N802,N803 - the case's name
    """``return parseInt(hexValue, 16);`` (NaN, here NULL, when it does not parse)."""
    try:
        return int(str(hexValue).strip(), 16)
    except ValueError:
        return None


#: case UDF name -> "module:function" for ``headwater query test --udf``
PORTS = {"udflen": "tests.sql.conformance_udfs:udfLen", "hex2int": "tests.sql.conformance_udfs:Hex2Int"}
