"""The bundled simulated multi-tenant search + recommendations service, with fault injection."""
