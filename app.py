"""Generative Playground: build the page and, run as a script, serve it.

    python app.py            # http://127.0.0.1:7860 (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT to change)

On Hugging Face Spaces this file is the entry point as it is.
"""

from playground.app import CSS, build_app

demo = build_app()

if __name__ == "__main__":
    demo.launch(css=CSS)
