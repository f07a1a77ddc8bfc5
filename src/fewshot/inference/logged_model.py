"""The file MLflow runs to rebuild a few-shot model that train@ or serving logged ("models from
code": MLflow keeps this file with the model and runs it at load, so loading a logged model
unpickles nothing). The model's files are its artifacts (`FewShotModel.load_context`)."""

from mlflow.models import set_model

from fewshot.inference.serving import FewShotModel

set_model(FewShotModel())
