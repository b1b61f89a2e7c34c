"""The API's routers, one module per concern; each `*_router(state)` builds its routes over one app's AppState."""
