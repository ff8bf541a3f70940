"""Generative Playground: build the page and, run as a script, serve it.

    python app.py            # http://127.0.0.1:7860 (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT to change)

On Hugging Face Spaces this file is the entry point as it is. Each run trains
in a child process, and a child process imports this file again (as
`__mp_main__`) before it starts: so the page is built and Gradio imported only
when the file is run, not when it is imported.
"""


def main() -> None:
    # First: on a ZeroGPU Space this imports `spaces`, which must come before anything touches CUDA.
    from playground.runs import gpu  # noqa: F401
    from playground.app import CSS, build_app, keep_idle_connections, serve_many

    demo = build_app()
    serve_many()  # the server's own settings for many sessions at once (playground.app.layout)
    demo.launch(css=CSS, prevent_thread_lock=True)
    keep_idle_connections(demo)  # longer than its clients keep them (playground.app.layout)
    demo.block_thread()


if __name__ == "__main__":
    main()
