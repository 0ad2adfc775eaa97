"""The engine both domains share (imports nothing from eval, coder or math): configs and artifacts here;
data/, models/, train/, recipes/, pipeline/ and sandbox/ below."""
