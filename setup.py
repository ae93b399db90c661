from setuptools import find_packages, setup

setup(
    name="tflw",
    version="0.1.0",
    description="Keras 3 models onto microcontrollers: int8 QAT, TFLite-Micro-verified "
    "export, Arduino sketches.",
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["tflw", "tflw.*"]) + ["tflw.firmware_templates"],
    package_dir={"tflw.firmware_templates": "firmware_templates"},
    package_data={
        "tflw": ["data/*.npz", "data/README.md", "export/*.json"],
        "tflw.firmware_templates": ["*.h", "*.cc", "arduino/*.ino", "host/*.h", "host/*.cc",
                                    "qemu/*", "platformio/*.ini"],
    },
    install_requires=[
        "tensorflow>=2.16",
        "tensorflow-model-optimization>=0.8",
        "tf-keras>=2.16",
        "numpy",
        "tflite-micro",
        "pyyaml",
        "scipy",  # fit_board's integer program (HiGHS)
    ],
    # jax, torch: the suite trains on the JAX and PyTorch backends too (tests/backends), as a
    # GPU machine without TensorFlow does
    # nbclient, ipykernel: the notebooks run in the suite; matplotlib: their plots
    # ray: fit_board's candidates on several machines (tflw.search.RayExecutor), tested
    # mkdocs, mkdocs-material, mkdocstrings: the suite builds the documentation site
    # pytest-xdist: the suite runs a test file per core (-n 2 --dist loadfile)
    extras_require={"test": ["pytest", "pytest-xdist", "hypothesis", "jax", "torch", "nbclient",
                             "nbformat",
                             "ipykernel", "matplotlib", "ray", "mkdocs", "mkdocs-material",
                             "mkdocstrings[python]"],
                    "docs": ["mkdocs", "mkdocs-material", "mkdocstrings[python]"],
                    "plots": ["matplotlib"],
                    "distributed": ["ray"]},
    entry_points={"console_scripts": ["tflw=tflw.cli:main"]},
)
