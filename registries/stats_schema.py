"""The shape of GET /api/v1/registries/{id}/stats/ (registries.metrics.registry_stats),
declared once so the OpenAPI schema and the answer cannot drift apart."""

from rest_framework import serializers


def _count(help_text: str):
    return serializers.IntegerField(help_text=help_text)


def _gauge(help_text: str):
    return serializers.IntegerField(allow_null=True, help_text=help_text)


class GatewayStatusSerializer(serializers.Serializer):
    """A mirror's gateway; other registries answer {"status": "none"} only."""

    status = serializers.ChoiceField(
        ["none", "unknown", "down", "caching", "pass-through"]
    )
    enabled = serializers.BooleanField(required=False)
    running = serializers.BooleanField(allow_null=True, required=False)
    port = serializers.IntegerField(allow_null=True, required=False)
    cache_bytes = serializers.IntegerField(
        allow_null=True, required=False, help_text="bytes in the gateway's blob cache"
    )
    cache_max_bytes = serializers.IntegerField(required=False)
    last_error = serializers.CharField(required=False, allow_blank=True)
    last_error_at = serializers.DateTimeField(allow_null=True, required=False)


class RepositoryBytesSerializer(serializers.Serializer):
    repository = serializers.CharField()
    bytes_upstream = serializers.IntegerField()


class RegistryStatsSerializer(serializers.Serializer):
    requests = _count("blob requests clients made through the mirror")
    hits = _count("requests - misses")
    misses = _count("blobs the mirror had to fetch from upstream")
    hit_rate = serializers.FloatField(allow_null=True, help_text="hits / requests")
    bytes_upstream = _count("bytes that crossed from the upstream (ground truth)")
    bytes_served = _count("bytes clients received")
    bytes_missed = _count("bytes of the blobs that were misses")
    amplification = serializers.FloatField(
        allow_null=True, help_text="bytes_upstream / bytes_missed"
    )
    bytes_saved = _count("bytes_served - bytes_upstream")
    upstream_requests = _count("requests of any kind that reached the upstream")
    upstream_by_repository = RepositoryBytesSerializer(many=True)
    storage_bytes = _gauge("bytes under the registry's root in its store")
    objects = _gauge("objects under the registry's root")
    abandoned_upload_bytes = _gauge("bytes held by unfinished uploads")
    sampled_at = serializers.DateTimeField(allow_null=True)
    window_seconds = serializers.IntegerField()
    gateway = GatewayStatusSerializer()
