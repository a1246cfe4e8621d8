"""Explanations of trained models (Grad-CAM, LIME, SHAP, SmoothGrad): glue around captum and lime."""
