"""Operations: Prometheus metrics, health."""
