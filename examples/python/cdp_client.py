#!/usr/bin/env python3
"""A Python client of cdp's gRPC API (cdp.v1), generated from proto/ with grpcio-tools.

    pip install grpcio grpcio-tools grpcio-health-checking
    python3 examples/python/cdp_client.py --addr 127.0.0.1:50051 --key "$CDP_API_KEY" --customer C0000042

It compiles proto/cdp/v1/*.proto into a temporary folder at start (no generated
code is kept in the repository), checks the server's health, then fetches the
customer's profile, their card_offers_v1 features and their ranked card offers,
and prints one JSON document. The end-to-end tests run it against `cdp serve` as
a real foreign client.
"""

import argparse
import importlib
import json
import os
import sys
import tempfile

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_tools import protoc

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_ROOT = os.path.normpath(os.path.join(HERE, "..", "..", "proto"))
PROTOS = ["cdp/v1/common.proto", "cdp/v1/profile.proto", "cdp/v1/features.proto", "cdp/v1/scoring.proto"]


def generate(out_dir):
    """Compiles the cdp.v1 protos into out_dir and makes them importable."""
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    args = ["protoc", f"-I{PROTO_ROOT}", f"-I{include}", f"--python_out={out_dir}", f"--grpc_python_out={out_dir}"]
    if protoc.main(args + PROTOS) != 0:
        sys.exit("cannot compile the cdp.v1 protos")
    sys.path.insert(0, out_dir)
    return {name: importlib.import_module(f"cdp.v1.{name}") for name in
            ["common_pb2", "profile_pb2", "profile_pb2_grpc", "features_pb2", "features_pb2_grpc",
             "scoring_pb2", "scoring_pb2_grpc"]}


def value(v):
    """A FeatureValue as a plain Python value (None when null)."""
    kind = v.WhichOneof("kind")
    if kind is None:
        return None
    if kind == "string_list_value":
        return list(v.string_list_value.values)
    return getattr(v, kind)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--addr", default="127.0.0.1:50051")
    parser.add_argument("--key", default=os.environ.get("CDP_API_KEY", ""), help="API key (env CDP_API_KEY)")
    parser.add_argument("--customer", required=True, help="any customer key: customer_id, unified_id, device_id, ...")
    parser.add_argument("--feature-service", default="card_offers_v1")
    parser.add_argument("--at", type=int, default=0, help="judge feature TTLs at this Unix time (0: now)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as out_dir:
        pb = generate(out_dir)
        channel = grpc.insecure_channel(args.addr)
        auth = [("authorization", f"Bearer {args.key}")]
        out = {}

        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        out["health"] = health_pb2.HealthCheckResponse.ServingStatus.Name(health.status)

        key = pb["common_pb2"].CustomerKey(value=args.customer)
        profiles = pb["profile_pb2_grpc"].ProfileServiceStub(channel)
        got = profiles.GetProfile(pb["profile_pb2"].GetProfileRequest(key=key), metadata=auth, timeout=5)
        p = got.profile
        out["profile"] = {"unified_id": p.unified_id, "primary_customer_id": p.primary_customer_id,
                          "pii_masked": p.pii_masked, "phone": p.phone, "segment": p.segment,
                          "income_band": p.income_band, "products": list(p.products),
                          "customer_ids": list(p.keys.customer_ids), "tags": list(p.tags.tags),
                          "segment_name": p.tags.segment_name, "as_of": got.snapshot.as_of}

        features = pb["features_pb2_grpc"].FeatureServiceStub(channel)
        request = pb["features_pb2"].GetOnlineFeaturesRequest(entities=[key], feature_service=args.feature_service)
        if args.at:
            request.at.seconds = args.at
        got = features.GetOnlineFeatures(request, metadata=auth, timeout=5)
        status = pb["features_pb2"].FeatureStatus
        out["features"] = {c.name: {"value": value(c.values[0]), "status": status.Name(c.statuses[0])}
                           for c in got.columns}

        scoring = pb["scoring_pb2_grpc"].ScoringServiceStub(channel)
        got = scoring.ScoreOffers(pb["scoring_pb2"].ScoreOffersRequest(customer=key), metadata=auth, timeout=5)
        out["offers"] = [{"offer_id": o.offer_id, "probability": o.probability, "rank": o.rank,
                          "reasons": list(o.reasons)} for o in got.offers]
        out["model_version"] = got.model_version

        try:
            profiles.GetProfile(pb["profile_pb2"].GetProfileRequest(key=key), timeout=5)
            out["without_key"] = "OK"
        except grpc.RpcError as e:
            out["without_key"] = e.code().name
        print(json.dumps(out))


if __name__ == "__main__":
    main()
