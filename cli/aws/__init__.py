"""Talking to AWS (or the emulator) through boto3: sessions and CloudFormation deploys."""
