"""`ptdit demo`: a Gradio page over `PTDiTPipeline` with an attention view (the `demo` extra: gradio).

`ptdit.demo.engine` holds the work without the page (checks, generation through PTDiTPipeline, attention
pictures, `save_attention`); `ptdit.demo.app` the page and the command. Gradio is imported only by the page.
"""
