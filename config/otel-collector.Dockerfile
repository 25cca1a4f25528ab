# The OpenTelemetry collector of docker-compose.prod.yml: the upstream contrib image (FROM
# scratch: no shell, no wget) plus one static busybox binary, so that Compose can run a health
# check against the collector's health_check extension (port 13133).
FROM busybox:1.37.0-musl AS busybox

FROM otel/opentelemetry-collector-contrib:0.139.0
COPY --from=busybox /bin/busybox /bin/busybox
