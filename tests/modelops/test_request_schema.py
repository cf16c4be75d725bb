"""Whether one version takes the requests another version's clients send: OpenAPI request schemas compared."""

from __future__ import annotations

import copy

from modelops.request_schema import compare, request_schemas


def service(features: int, description: str = "one sample") -> dict:
    """An OpenAPI document shaped like BentoML's: a /predict body by reference, health endpoints beside it."""
    return {
        "openapi": "3.0.2",
        "paths": {
            "/predict": {
                "post": {
                    "requestBody": {
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PredictInput"}}}
                    }
                }
            },
            "/readyz": {"get": {}},
            "/metrics": {"get": {}},
        },
        "components": {
            "schemas": {
                "PredictInput": {
                    "type": "object",
                    "title": "PredictInput",
                    "required": ["rows"],
                    "properties": {
                        "rows": {
                            "type": "array",
                            "description": "rows",
                            "examples": [[[1.0] * features]],
                            "items": {
                                "type": "array",
                                "description": description,
                                "minItems": features,
                                "maxItems": features,
                                "items": {"type": "number"},
                            },
                        }
                    },
                }
            }
        },
    }


def test_a_version_with_the_same_request_schema_takes_the_live_versions_requests() -> None:
    assert compare(service(13), service(13)) == []


def test_titles_descriptions_and_examples_are_prose_not_part_of_the_contract() -> None:
    other = service(13, description="one sample: other feature names")
    other["components"]["schemas"]["PredictInput"]["properties"]["rows"]["examples"] = [[[2.0] * 13]]
    assert compare(service(13), other) == []


def test_another_feature_count_is_a_different_request_schema_naming_the_field() -> None:
    differences = compare(service(13), service(10))
    assert differences, "13 features vs 10 must differ"
    assert any("minItems: 13 in the live version, 10 in the other" in d for d in differences), differences
    assert all(d.startswith("POST /predict") for d in differences)


def test_a_missing_endpoint_is_a_difference_and_health_endpoints_are_ignored() -> None:
    live, other = service(13), copy.deepcopy(service(13))
    other["paths"]["/classify"] = other["paths"].pop("/predict")
    del other["paths"]["/readyz"]
    assert compare(live, other) == ["POST /predict: the live version has this endpoint, the other does not"]
    assert list(request_schemas(live)) == ["POST /predict"]


def test_references_are_resolved_before_comparing() -> None:
    inline = copy.deepcopy(service(13))
    body = inline["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    body["schema"] = copy.deepcopy(inline["components"]["schemas"]["PredictInput"])
    assert compare(service(13), inline) == []
    changed = copy.deepcopy(service(13))
    changed["components"]["schemas"]["PredictInput"]["required"] = ["rows", "ids"]
    assert compare(service(13), changed), "a new required field behind a $ref is a difference"
